package dev.pocketbert.tokenizer;

/** Model inputs for one text or text pair: ids, segment ids and attention mask, all the same length. */
public final class Encoding {
    public final int[] inputIds;
    public final int[] tokenTypeIds;
    public final int[] attentionMask;

    Encoding(int[] inputIds, int[] tokenTypeIds, int[] attentionMask) {
        this.inputIds = inputIds;
        this.tokenTypeIds = tokenTypeIds;
        this.attentionMask = attentionMask;
    }

    public int length() {
        return inputIds.length;
    }
}
