"""Containers: each reads one on-disk format and hands its pickle streams and raw records to the VM."""
