"""`recoup demo`: a realistic book simulated day by day through the real services."""
