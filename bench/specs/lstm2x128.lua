-- Benchmark configuration lstm2x128 (bench/README.md): LSTM 2x128, batch 1, T 100
return model {
  name = "lstm2x128", input = 32, seq_len = 100, batch = 1,
  recurrent = { lstm(128), lstm(128) },
  loss = "mse", output_at = "all", precision = "f32",
}
