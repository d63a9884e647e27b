"""Maestro's wire contracts: frozen msgspec Structs, JSON on the wire; imports nothing from maestro."""
