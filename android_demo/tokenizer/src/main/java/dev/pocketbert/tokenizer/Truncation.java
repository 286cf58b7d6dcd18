package dev.pocketbert.tokenizer;

/** The truncation strategies of the Python tokenizer (and of the tokenizers library). */
public enum Truncation {
    NONE,
    /** Shorten the longer sequence first, ending as evenly as possible. */
    LONGEST_FIRST,
    ONLY_FIRST,
    ONLY_SECOND
}
