"""People of the back office (issue 12): users with argon2-hashed passwords and one of the
API's roles (recoup.core.roles), and their browser sessions."""
