"""Apt version pins in the Dockerfiles: read them (dockerfile_words), ask Debian what it serves
(apt), report drift and move them (drift)."""
