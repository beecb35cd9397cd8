"""The task and its rules, shared by the web and worker roles. No Flask, no provider HTTP."""
