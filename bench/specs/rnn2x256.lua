-- Benchmark configuration rnn2x256 (bench/README.md): RNN 2x256 (tanh), batch 1, T 100
return model {
  name = "rnn2x256", input = 32, seq_len = 100, batch = 1,
  recurrent = { rnn(256), rnn(256) },
  loss = "mse", output_at = "all", precision = "f32",
}
