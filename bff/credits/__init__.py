"""Credits: what tasks cost, and who may spend how much per UTC day (no Flask here).

``prices`` is Tripo's price table (a setting); ``pricing`` prices a task from what it
sends; ``plans`` picks a user's daily allowance from token claims; ``book`` reserves
credits with the task's record and releases them exactly once; ``settlement`` decides
what a finished task is charged; ``credits`` puts them together for both roles.
"""
