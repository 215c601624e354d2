"""Pure training: state, optimizers and schedules, train/eval steps, the compiled scan loop."""
