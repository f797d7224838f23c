"""Competition data: reading and checking the files, repairing turn cells, encoding pairs into token ids."""
