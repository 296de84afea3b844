-- Benchmark configuration lstm2x128_t256 (bench/README.md): LSTM 2x128, batch 1, T 256 — the
-- long sequence of the two-core target (issue 7)
return model {
  name = "lstm2x128_t256", input = 32, seq_len = 256, batch = 1,
  recurrent = { lstm(128), lstm(128) },
  loss = "mse", output_at = "all", precision = "f32",
}
