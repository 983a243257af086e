"""The daemon's configuration: the TOML files loaded into pydantic models (``loading``) and
the README's generated reference (``reference``)."""
