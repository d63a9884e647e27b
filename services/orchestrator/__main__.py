"""`python -m services.orchestrator`: the orchestrator (it reads nothing beyond what Settings checks)."""

if __name__ == "__main__":
    from maestro import runtime
    from services.orchestrator.service import SERVICE

    runtime.main(SERVICE)
