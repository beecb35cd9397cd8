"""Local stand-ins for the paid providers, so the app and its tests run without keys or
internet. `sandbox.tripo` fakes Tripo apiv3 and `sandbox.openai` OpenAI's image edits,
over real HTTP; `sandbox.app` puts both behind one port, `sandbox.server` serves it,
`sandbox.faults` makes them misbehave on demand, `sandbox.assets` builds the files served."""
