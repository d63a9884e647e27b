"""`python -m services.budget`: one budget replica (its price table is checked with the settings)."""

if __name__ == "__main__":
    from maestro import runtime
    from services.budget.service import SERVICE

    runtime.main(SERVICE)
