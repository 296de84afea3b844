-- The smallest valid spec: batch, head, loss, output_at and precision take their defaults.
return model { name = "defaults", input = 1, seq_len = 1, recurrent = { rnn(1) } }
