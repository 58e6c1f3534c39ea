"""The matcher process: the order books and the fills decided on them."""
