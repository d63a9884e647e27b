"""`python -m services.guard`: the guard service (it reads nothing beyond what Settings checks)."""

if __name__ == "__main__":
    from maestro import runtime
    from services.guard.service import SERVICE

    runtime.main(SERVICE)
