-- Benchmark configuration lstm1x256 (bench/README.md): LSTM 1x256, batch 1, T 100
return model {
  name = "lstm1x256", input = 32, seq_len = 100, batch = 1,
  recurrent = { lstm(256) },
  loss = "mse", output_at = "all", precision = "f32",
}
