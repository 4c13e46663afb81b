"""Modal screens: confirmation, help, path picker, live hyperparameter edit."""
