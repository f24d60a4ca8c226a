"""Built-in token mixers; importing this package registers them."""

import importlib
import pkgutil

# Every module of this package registers its mixers when imported.
for _info in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_info.name}")
