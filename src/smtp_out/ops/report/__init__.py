"""The burn-in report: one pass over a container's log (logparse), the facts gathered from
running containers (burnin), and the figures and red flags judged from them (verdict)."""
