"""Human work: the people, their inbox, and claims, completions and releases of human queues' tasks."""
