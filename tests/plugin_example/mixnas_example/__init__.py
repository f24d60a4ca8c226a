"""An example mixnas plug-in (see docs/extending.md): importing this package registers nothing;
mixnas imports the modules its entry points name when a registry is first used."""
