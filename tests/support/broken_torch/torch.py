# Test fixture: a torch that cannot be imported (tests/support/broken_oracle.cmake puts this folder
# first on PYTHONPATH to prove that a broken oracle fails CI instead of skipping).
raise ImportError("deliberately broken PyTorch oracle (test fixture)")
