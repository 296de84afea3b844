-- Benchmark configuration lstm2x128_b16 (bench/README.md): LSTM 2x128, batch 16, T 50 (training throughput)
return model {
  name = "lstm2x128_b16", input = 32, seq_len = 50, batch = 16,
  recurrent = { lstm(128), lstm(128) },
  loss = "mse", output_at = "all", precision = "f32",
}
