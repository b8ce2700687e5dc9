"""Command-line tools that turn raw data into RecBole cross-domain atomic files."""
