package dev.pocketbert.tokenizer;

import java.util.List;
import java.util.Map;

/** Greedy longest-match-first WordPiece: a word becomes pieces, the rest prefixed "##";
 *  a word with an unmatchable part, or longer than maxCharsPerWord code points, is [UNK]. */
public final class WordPiece {
    private final Map<String, Integer> vocab;
    private final int unkId;
    private final int maxCharsPerWord;

    public WordPiece(Map<String, Integer> vocab, int unkId, int maxCharsPerWord) {
        this.vocab = vocab;
        this.unkId = unkId;
        this.maxCharsPerWord = maxCharsPerWord;
    }

    public void tokenize(String word, List<Integer> out) {
        int[] cps = word.codePoints().toArray();
        if (cps.length > maxCharsPerWord) {
            out.add(unkId);
            return;
        }
        int mark = out.size();
        int start = 0;
        while (start < cps.length) {
            int end = cps.length;
            Integer found = null;
            while (start < end) {
                String piece = new String(cps, start, end - start);
                found = vocab.get(start > 0 ? "##" + piece : piece);
                if (found != null) {
                    break;
                }
                end--;
            }
            if (found == null) {
                out.subList(mark, out.size()).clear();
                out.add(unkId);
                return;
            }
            out.add(found);
            start = end;
        }
    }
}
