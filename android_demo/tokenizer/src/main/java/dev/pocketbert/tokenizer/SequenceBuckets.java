package dev.pocketbert.tokenizer;

import java.util.Arrays;

/**
 * Sequence buckets of a .tflite export ({@code pocketbert export ... --seq-lens 16 32 64 128}):
 * one file, one static signature per length, named {@code seq_16}, {@code seq_32}, ... The app
 * truncates a text to the largest bucket, pads it to the smallest bucket that holds it, runs that
 * signature and cuts outputs with a sequence axis back to the real tokens. The app's one place
 * for the choice, as {@code pocketbert/runtime/buckets.py} is Python's (checked against
 * it on the JVM by tests/test_android_demo.py). Pure Java: runs on the JVM and on Android.
 */
public final class SequenceBuckets {
    /** The signature name's prefix: {@code bucket_signature(n)} in buckets.py. */
    public static final String PREFIX = "seq_";

    private SequenceBuckets() {}

    /** The name of the signature that takes {@code length} tokens. */
    public static String signature(int length) {
        return PREFIX + length;
    }

    /** The lengths ascending and without repeats (a manifest's list; the export writes it sorted). */
    public static int[] sorted(int[] buckets) {
        int[] lengths = Arrays.stream(buckets).distinct().sorted().toArray();
        if (lengths.length > 0 && lengths[0] < 1) {
            throw new IllegalArgumentException("a sequence bucket of " + lengths[0] + " tokens");
        }
        return lengths;
    }

    /**
     * The smallest bucket that holds {@code length} tokens; the largest for a longer input (which
     * the app has truncated to it: Python's {@code pick} raises instead, its runner does not truncate).
     *
     * @param buckets ascending, as {@link #sorted} gives them
     */
    public static int pick(int[] buckets, int length) {
        if (buckets.length == 0) {
            throw new IllegalArgumentException("no sequence buckets");
        }
        for (int bucket : buckets) {
            if (bucket >= length) {
                return bucket;
            }
        }
        return buckets[buckets.length - 1];
    }

    /**
     * What the app runs for a bucketed file: {@code text} (and {@code pair}, may be null) truncated
     * to the largest bucket, then padded to {@link #pick the smallest bucket} that holds it.
     */
    public static Encoding encode(BertTokenizer tokenizer, String text, String pair, int[] buckets) {
        if (buckets.length == 0) {
            throw new IllegalArgumentException("no sequence buckets");
        }
        Encoding tokens = tokenizer.encode(text, pair, buckets[buckets.length - 1], Truncation.LONGEST_FIRST, false);
        return padded(tokens, pick(buckets, tokens.length()), tokenizer.padId);
    }

    /** {@code encoding} right-padded to {@code length}: ids {@code padId}, segment 0, mask 0 (as the tokenizer pads). */
    public static Encoding padded(Encoding encoding, int length, int padId) {
        int have = encoding.length();
        if (have > length) {
            throw new IllegalArgumentException(have + " tokens do not fit in " + length);
        }
        if (have == length) {
            return encoding;
        }
        int[] ids = Arrays.copyOf(encoding.inputIds, length);
        Arrays.fill(ids, have, length, padId);
        return new Encoding(ids, Arrays.copyOf(encoding.tokenTypeIds, length), Arrays.copyOf(encoding.attentionMask, length));
    }

    /** Real tokens of a right-padded encoding: the positions its attention mask keeps. */
    public static int tokens(Encoding encoding) {
        int count = 0;
        for (int kept : encoding.attentionMask) {
            count += kept != 0 ? 1 : 0;
        }
        return count;
    }

    /**
     * The first {@code length} positions along {@code axis} of a row-major tensor of {@code shape}
     * ({@code trimmed} in buckets.py): start_logits [1, S] or last_hidden_state [1, S, H] of a
     * bucket cut back to the text's tokens.
     */
    public static float[] trimmed(float[] values, int[] shape, int axis, int length) {
        if (axis < 0 || axis >= shape.length) {
            throw new IllegalArgumentException("axis " + axis + " of a " + shape.length + "-d tensor");
        }
        long outer = 1;
        for (int i = 0; i < axis; i++) {
            outer *= shape[i];
        }
        long inner = 1;
        for (int i = axis + 1; i < shape.length; i++) {
            inner *= shape[i];
        }
        int size = shape[axis];
        if (values.length != outer * size * inner) {
            throw new IllegalArgumentException(values.length + " values, not a tensor of shape " + Arrays.toString(shape));
        }
        if (length < 0 || length > size) {
            throw new IllegalArgumentException("cannot keep " + length + " of " + size + " positions");
        }
        if (length == size) {
            return values;
        }
        int block = (int) (length * inner);
        int stride = (int) (size * inner);
        float[] kept = new float[(int) (outer * block)];
        for (int o = 0; o < outer; o++) {
            System.arraycopy(values, o * stride, kept, o * block, block);
        }
        return kept;
    }
}
