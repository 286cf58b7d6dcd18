package dev.pocketbert.tokenizer;

import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.Arrays;
import java.util.Base64;
import java.util.List;
import java.util.StringJoiner;

/**
 * Runs {@link SequenceBuckets} on cases pocketbert's Python wrote and prints what it gives, one
 * line a case; tests/test_android_demo.py compares them with buckets.py (no JUnit needed).
 * <ul>
 *   <li>{@code pick CASES}: "b1,b2,... length" a line; prints "sorted-buckets pick signature".</li>
 *   <li>{@code trim CASES}: "d1,d2,...\taxis\tlength\tv1 v2 ..." a line; prints the kept values.</li>
 *   <li>{@code encode VOCAB b1,b2,... TEXTS}: "base64(text)\tbase64(pair)|-" a line; prints
 *       "bucket\tsignature\ttokens\tids\ttypes\tmask" as the app would run the text.</li>
 * </ul>
 */
public final class BucketCheck {
    public static void main(String[] args) throws IOException {
        switch (args[0]) {
            case "pick":
                for (String line : lines(args[1])) {
                    String[] fields = line.split(" ");
                    int[] buckets = SequenceBuckets.sorted(ints(fields[0]));
                    int bucket = SequenceBuckets.pick(buckets, Integer.parseInt(fields[1]));
                    System.out.println(joined(buckets) + " " + bucket + " " + SequenceBuckets.signature(bucket));
                }
                break;
            case "trim":
                for (String line : lines(args[1])) {
                    String[] fields = line.split("\t");
                    String[] numbers = fields[3].split(" ");
                    float[] values = new float[numbers.length];
                    for (int i = 0; i < numbers.length; i++) {
                        values[i] = Float.parseFloat(numbers[i]);
                    }
                    float[] kept = SequenceBuckets.trimmed(values, ints(fields[0]), Integer.parseInt(fields[1]),
                            Integer.parseInt(fields[2]));
                    StringJoiner out = new StringJoiner(" ");
                    for (float v : kept) {
                        out.add(Float.toString(v));
                    }
                    System.out.println(out);
                }
                break;
            case "encode":
                BertTokenizer tokenizer;
                try (InputStream vocab = new FileInputStream(args[1])) {
                    tokenizer = BertTokenizer.fromVocab(vocab, true);  // as BertModel loads vocab.txt
                }
                int[] buckets = SequenceBuckets.sorted(ints(args[2]));
                for (String line : lines(args[3])) {
                    String[] fields = line.split("\t");
                    String pair = fields[1].equals("-") ? null : decoded(fields[1]);
                    Encoding e = SequenceBuckets.encode(tokenizer, decoded(fields[0]), pair, buckets);
                    System.out.println(e.length() + "\t" + SequenceBuckets.signature(e.length()) + "\t"
                            + SequenceBuckets.tokens(e) + "\t" + joined(e.inputIds) + "\t" + joined(e.tokenTypeIds)
                            + "\t" + joined(e.attentionMask));
                }
                break;
            default:
                throw new IllegalArgumentException("mode pick, trim or encode, not " + args[0]);
        }
    }

    private static List<String> lines(String path) throws IOException {
        return Files.readAllLines(Paths.get(path), StandardCharsets.UTF_8);
    }

    private static String decoded(String base64) {
        return new String(Base64.getDecoder().decode(base64), StandardCharsets.UTF_8);
    }

    private static int[] ints(String csv) {
        return Arrays.stream(csv.split(",")).mapToInt(Integer::parseInt).toArray();
    }

    private static String joined(int[] values) {
        StringJoiner out = new StringJoiner(",");
        for (int v : values) {
            out.add(Integer.toString(v));
        }
        return out.toString();
    }
}
