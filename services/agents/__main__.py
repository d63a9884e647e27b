"""`python -m services.agents`: the agents service (it reads nothing beyond what Settings checks)."""

if __name__ == "__main__":
    from maestro import runtime
    from services.agents.service import SERVICE

    runtime.main(SERVICE)
