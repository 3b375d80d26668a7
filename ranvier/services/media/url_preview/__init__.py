"""URL previews: fetch a page for a client without letting the fetch reach addresses the
admin has put off limits, turn it into OpenGraph, keep the result for a while."""
