-- Benchmark configuration gru2x128 (bench/README.md): GRU 2x128, batch 1, T 100
return model {
  name = "gru2x128", input = 32, seq_len = 100, batch = 1,
  recurrent = { gru(128), gru(128) },
  loss = "mse", output_at = "all", precision = "f32",
}
