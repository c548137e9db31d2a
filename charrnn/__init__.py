"""charrnn: character-level RNN, LSTM and GRU language models, trained on a CPU in NumPy."""

__version__ = "0.1.0"
