-- Benchmark configuration lstm1x32 (bench/README.md): LSTM 1x32, batch 1, T 100
return model {
  name = "lstm1x32", input = 32, seq_len = 100, batch = 1,
  recurrent = { lstm(32) },
  loss = "mse", output_at = "all", precision = "f32",
}
