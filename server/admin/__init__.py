"""Administrator pages: users, organisations, specialties and rosters of one's hospital."""
