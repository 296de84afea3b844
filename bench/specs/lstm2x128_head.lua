-- Benchmark configuration lstm2x128_head (bench/README.md): LSTM 2x128 with a 2-layer 128-wide head, batch 1, T 100
return model {
  name = "lstm2x128_head", input = 32, seq_len = 100, batch = 1,
  recurrent = { lstm(128), lstm(128) },
  head = { dense(128, "relu"), dense(128) },
  loss = "mse", output_at = "all", precision = "f32",
}
