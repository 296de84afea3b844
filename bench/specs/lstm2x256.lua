-- Benchmark configuration lstm2x256 (bench/README.md): LSTM 2x256, batch 1, T 100
return model {
  name = "lstm2x256", input = 32, seq_len = 100, batch = 1,
  recurrent = { lstm(256), lstm(256) },
  loss = "mse", output_at = "all", precision = "f32",
}
