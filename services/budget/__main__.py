"""`python -m services.budget`: one budget replica, once its price table is known to be readable.

`maestro up` calls check_settings too, before it starts any process (maestro/mesh_commands.py).
"""

from maestro.settings import Settings
from services.budget import pricing


def check_settings(settings: Settings) -> None:
    """Raises ValueError naming a setting the budget cannot run with (MAESTRO_PRICING)."""
    pricing.from_settings(settings)


if __name__ == "__main__":
    from maestro import runtime
    from services.budget.service import SERVICE

    runtime.main(SERVICE, check=check_settings)
