"""The simulated card center: its pages, students, sessions and keypad."""
