"""Cost and latency models and accuracy surrogates behind one fit/predict interface."""
