"""The pipeline's steps and records: validate, land, fan out, commit, publish, clean up (AWS behind ports)."""
