"""The library behind the commands in train/: data, the trainer's state and step, the loop around it,
checkpoints, sampling, the gradient check and the pictures. Nothing here parses flags or exits."""
