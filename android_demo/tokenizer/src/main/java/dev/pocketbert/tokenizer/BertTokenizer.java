package dev.pocketbert.tokenizer;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * BERT's uncased WordPiece tokenizer, giving the same ids as pocketbert's Python tokenizer
 * (and transformers' BertTokenizerFast): special tokens found in the raw text first, then
 * {@link BasicTokenizer} and {@link WordPiece}, then [CLS] a [SEP] (b [SEP]), truncation and
 * right padding. Pure Java: runs on the JVM and on Android.
 */
public final class BertTokenizer {
    public static final int MAX_CHARS_PER_WORD = 100;
    private static final String[] SPECIAL = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};

    private final Map<String, Integer> vocab;
    private final String[] idToToken;
    private final BasicTokenizer basic;
    private final WordPiece wordPiece;
    public final int padId;
    public final int unkId;
    public final int clsId;
    public final int sepId;
    public final int maskId;

    public BertTokenizer(Map<String, Integer> vocab, boolean lowercase) {
        for (String token : SPECIAL) {
            if (!vocab.containsKey(token)) {
                throw new IllegalArgumentException("vocabulary lacks " + token);
            }
        }
        this.vocab = Collections.unmodifiableMap(vocab);
        int size = Collections.max(vocab.values()) + 1;
        this.idToToken = new String[size];
        vocab.forEach((token, id) -> idToToken[id] = token);
        this.padId = vocab.get("[PAD]");
        this.unkId = vocab.get("[UNK]");
        this.clsId = vocab.get("[CLS]");
        this.sepId = vocab.get("[SEP]");
        this.maskId = vocab.get("[MASK]");
        this.basic = new BasicTokenizer(lowercase);
        this.wordPiece = new WordPiece(this.vocab, unkId, MAX_CHARS_PER_WORD);
    }

    /** Read vocab.txt: one token per line, id = line number; a repeated token keeps its first id. */
    public static BertTokenizer fromVocab(InputStream vocabTxt, boolean lowercase) throws IOException {
        Map<String, Integer> vocab = new HashMap<>();
        try (BufferedReader reader = new BufferedReader(new InputStreamReader(vocabTxt, StandardCharsets.UTF_8))) {
            String line;
            int index = 0;
            while ((line = reader.readLine()) != null) {
                vocab.putIfAbsent(line, index++);
            }
        }
        return new BertTokenizer(vocab, lowercase);
    }

    public int vocabSize() {
        return idToToken.length;
    }

    public String idToToken(int id) {
        return id >= 0 && id < idToToken.length ? idToToken[id] : null;
    }

    /** Token ids of {@code text} without special tokens around it. */
    public List<Integer> tokenizeToIds(String text) {
        List<Integer> ids = new ArrayList<>();
        int segmentStart = 0;
        int i = 0;
        while (i < text.length()) {
            String special = specialAt(text, i);
            if (special == null) {
                i++;
                continue;
            }
            addWords(text.substring(segmentStart, i), ids);
            ids.add(vocab.get(special));
            i += special.length();
            segmentStart = i;
        }
        addWords(text.substring(segmentStart), ids);
        return ids;
    }

    private static String specialAt(String text, int index) {
        String best = null;
        for (String token : SPECIAL) {
            if (text.startsWith(token, index) && (best == null || token.length() > best.length())) {
                best = token;
            }
        }
        return best;
    }

    private void addWords(String segment, List<Integer> ids) {
        if (segment.isEmpty()) {
            return;
        }
        for (String word : basic.tokenize(segment)) {
            wordPiece.tokenize(word, ids);
        }
    }

    /** Encode one text. */
    public Encoding encode(String text, int maxLength, Truncation truncation, boolean padToMaxLength) {
        return encode(text, null, maxLength, truncation, padToMaxLength);
    }

    /**
     * Encode a text, or a pair ({@code pair} non-null and non-empty, as in Python), truncated to
     * {@code maxLength} with {@code truncation} and padded on the right to {@code maxLength} when asked.
     *
     * @throws IllegalArgumentException when the strategy cannot reach maxLength (as Python raises)
     */
    public Encoding encode(String text, String pair, int maxLength, Truncation truncation, boolean padToMaxLength) {
        List<Integer> first = tokenizeToIds(text);
        List<Integer> second = pair == null || pair.isEmpty() ? null : tokenizeToIds(pair);
        int added = second == null ? 2 : 3;
        if (truncation != Truncation.NONE) {
            if (maxLength < added) {
                throw new IllegalArgumentException("max length " + maxLength + " leaves no room for the special tokens");
            }
            truncate(first, second, maxLength - added, truncation);
        }
        int length = first.size() + (second == null ? 0 : second.size()) + added;
        int total = padToMaxLength ? Math.max(length, maxLength) : length;
        int[] ids = new int[total];
        int[] types = new int[total];
        int[] mask = new int[total];
        Arrays.fill(ids, padId);
        int at = 0;
        ids[at++] = clsId;
        for (int id : first) {
            ids[at++] = id;
        }
        ids[at++] = sepId;
        if (second != null) {
            int secondStart = at;
            for (int id : second) {
                ids[at++] = id;
            }
            ids[at++] = sepId;
            Arrays.fill(types, secondStart, at, 1);
        }
        Arrays.fill(mask, 0, at, 1);
        return new Encoding(ids, types, mask);
    }

    /** The tokenizers library's truncation, to {@code target} tokens besides the special ones. */
    static void truncate(List<Integer> first, List<Integer> second, int target, Truncation strategy) {
        int total = first.size() + (second == null ? 0 : second.size());
        if (total <= target) {
            return;
        }
        int toRemove = total - target;
        if (strategy == Truncation.LONGEST_FIRST) {
            if (second == null) {
                keep(first, target);
                return;
            }
            // the shorter keeps its length if the longer can absorb the cut; else both end near target/2
            boolean swap = first.size() > second.size();
            int n1 = swap ? second.size() : first.size();
            int n2 = n1 > target ? n1 : Math.max(n1, target - n1);
            if (n1 + n2 > target) {
                n1 = target / 2;
                n2 = n1 + target % 2;
            }
            keep(first, swap ? n2 : n1);
            keep(second, swap ? n1 : n2);
            return;
        }
        List<Integer> victim = strategy == Truncation.ONLY_FIRST ? first : second;
        if (victim == null) {
            throw new IllegalArgumentException("truncation only_second needs a second sequence");
        }
        if (victim.size() <= toRemove) {
            throw new IllegalArgumentException("sequence to truncate is too short for max length");
        }
        keep(victim, victim.size() - toRemove);
    }

    private static void keep(List<Integer> ids, int length) {
        if (ids.size() > length) {
            ids.subList(length, ids.size()).clear();
        }
    }

    /** Tokens back to text for display: pieces joined, special tokens and padding dropped. */
    public String decode(int[] ids) {
        StringBuilder out = new StringBuilder();
        for (int id : ids) {
            if (id == padId || id == clsId || id == sepId) {
                continue;
            }
            String token = idToToken(id);
            if (token == null) {
                continue;
            }
            if (token.startsWith("##")) {
                out.append(token, 2, token.length());
            } else {
                if (out.length() > 0) {
                    out.append(' ');
                }
                out.append(token);
            }
        }
        return out.toString();
    }
}
