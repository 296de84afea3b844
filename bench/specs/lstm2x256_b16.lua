-- Benchmark configuration lstm2x256_b16 (bench/README.md): LSTM 2x256, batch 16, T 50 (training throughput)
return model {
  name = "lstm2x256_b16", input = 32, seq_len = 50, batch = 16,
  recurrent = { lstm(256), lstm(256) },
  loss = "mse", output_at = "all", precision = "f32",
}
