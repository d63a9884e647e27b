"""Tests of the agent workers."""
