"""Messages (SPEC §3): rendering templates and delivering what they produce, for the features
that send (actions) and those that keep or preview what was sent (documents).

- `sandbox`: the bounded Jinja sandbox user templates run in (issue 8.4);
- `render`: choosing a template for a language, the variables templates see, rendering;
- `letter`, `assets`: the letter layout printed to PDF, and what a letter may load (issue 8.2);
- `email`: building emails and delivering them (SMTP, or the outbox folder);
- `repository`: the template rows `render` chooses from;
- `errors`: TransportError, the failure a channel reports when its server cannot be reached.

Below the features: it imports models, settings and core, never actions, documents or plans.
What it renders comes in as arguments (rows already loaded), except the template rows and the
company settings it reads itself (through `repository` and `recoup.settings`)."""
