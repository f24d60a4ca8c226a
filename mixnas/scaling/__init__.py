"""The scaling engine's orchestration: families across budgets (`family`) and scaling laws
(`laws`). The rules themselves are torch-free data in `search_space.scaling`."""
