"""Anyone's independent view of the exchange: replay the public log and check every recorded checkpoint root."""
