// The agent desktop's SIP stack: JsSIP, exposed as window.JsSIP.
import * as JsSIP from "jssip";
window.JsSIP = JsSIP;
