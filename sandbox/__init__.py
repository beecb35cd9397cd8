"""Local stand-ins for the paid providers, so the app and its tests run without keys or
internet: `sandbox.tripo` fakes Tripo apiv3 over real HTTP, `sandbox.server` runs it on a
local port, `sandbox.assets` builds the GLB and PNG files it serves."""
