from hypothesis import settings

# Derandomized so CI is reproducible; every run still explores many shapes and options.
settings.register_profile("normlab", derandomize=True, deadline=None, max_examples=40)
settings.load_profile("normlab")
