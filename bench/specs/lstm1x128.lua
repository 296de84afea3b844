-- Benchmark configuration lstm1x128 (bench/README.md): LSTM 1x128, batch 1, T 100
return model {
  name = "lstm1x128", input = 32, seq_len = 100, batch = 1,
  recurrent = { lstm(128) },
  loss = "mse", output_at = "all", precision = "f32",
}
