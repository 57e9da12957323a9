"""Tests of the simulated school (schoolsim): the card center, the academic office, the library."""
