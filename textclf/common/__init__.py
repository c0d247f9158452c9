"""What every stage shares. Standard library and pydantic only: the params stage imports nothing heavier."""
